"""Upper bounds of the values reidpipe reads from flags, files and model metadata.

A value past its bound would not be a mistake reidpipe can work through: it would make the process
allocate until the kernel kills it (an image of 320000 x 320000 pixels, a classifier of a billion
identities) or loop for days. Each bound is generous (well past any real use) and safe (what it lets
through fits in a few GB), and a value past it is one error line naming the value. The rules that
apply them live where the values are read (``pipeline/validate.py`` for pipeline settings,
``trainers/config.py`` for training, ``reid/checkpoint.py`` for checkpoint metadata,
``pipeline/io/motfile.py`` for MOTChallenge files); docs/reliability.md lists them with their reasons.
"""

from __future__ import annotations

# detector input side (--imgsz): a 4096 x 4096 letterboxed frame is 200 MB of float32 before the
# network's own activations; detectors are trained at 320-1536
MAX_DETECTOR_SIDE = 4096
# ReID crop side (H or W of --reid-input-size, eval --input-size, data.input_size, checkpoint
# input_size): person crops are 256 x 128 to 384 x 192
MAX_REID_SIDE = 2048
# images or crops per forward pass (--embed-batch, eval --batch, data.test_batch_size, stage batches)
MAX_BATCH = 1024
# example batch that traces a model for ONNX export (the exported batch axis stays dynamic)
MAX_EXPORT_BATCH = 64
# identities of a training set (checkpoint num_classes): the largest ReID sets have ~500k
MAX_CLASSES = 1_000_000
# width of an embedding (checkpoint embed_dim): ReID models give 128-4096
MAX_EMBED_DIM = 16384
# frame number in a det.txt / gt.txt / trajectories.json: 10^7 frames are 11 days at 10 fps, 4 days
# at 30 fps (a longer recording is scored in parts); the scorer allocates per frame
MAX_FRAME = 10_000_000
# public detections kept per frame (det.txt): crowded MOT20 frames have ~250 people; past this a
# frame's tracking and embedding cost grow without bound
MAX_BOXES_PER_FRAME = 1000
# any duration or time offset in seconds (--offsets, --transit, --retention, timeouts): 10^10 s is
# 317 years, past any clock difference or retention; float seconds stay exact to 2 us there
MAX_SECONDS = 1e10
# frames held in a reader's queue (queue_size): each is a decoded image (6 MB at 1080p)
MAX_QUEUE = 1024
# nearest neighbours searched per tracklet (link.knn): the search allocates tracklets x knn
MAX_KNN = 1000
# embeddings kept per track (--bank-size)
MAX_BANK = 10_000
# a gallery identity id (search / gallery forget --identity): SQLite's INTEGER
MAX_IDENTITY = 2**63 - 1
# training: epochs of a stage, data-loader workers, a random seed (numpy takes 32 bits)
MAX_EPOCHS = 100_000
MAX_WORKERS = 256
MAX_SEED = 2**32 - 1
# a YAML configuration file (--config): real ones are a few kB
MAX_CONFIG_BYTES = 1_000_000
# a wait (reconnection back-off, Ray start-up timeout): a day; the OS timers take at most ~292 years
MAX_WAIT_SECONDS = 86400.0
# frames decoded for int8 calibration (quantize --frames): all are held in memory at once (3 GB of
# 1080p frames); static quantization needs a few hundred samples at most
MAX_CALIBRATION_FRAMES = 500
# reidpipe bench: tracklets or gallery embeddings of one measurement (2M of 512 floats are 4 GB), and
# the memory its synthetic gallery may take
MAX_BENCH_ITEMS = 2_000_000
MAX_BENCH_BYTES = 8 * 2**30
# reidpipe bench --cameras: each camera is a worker with its own models (about 100 MB); 64 cameras are
# past what one machine follows in real time. --repeat: passes of the whole pipeline over the sources
MAX_BENCH_CAMERAS = 64
MAX_BENCH_REPEAT = 20
# reidpipe adapt: a source's width or height recorded in a run's trajectories.json (a 32768-pixel
# side is past any camera; a frame of that size is 3 GB); a link's score or margin (cosines and their
# differences lie in [-2, 2]); crops cut per track (--crops-per-track: a track's frames are near
# copies, a few dozen spread over it say all it holds) and in all (each is a file of the mined set)
MAX_SOURCE_SIDE = 32768
MAX_LINK_VALUE = 10.0
MAX_CROPS_PER_TRACK = 1000
MAX_ADAPT_CROPS = 1_000_000
# crops seen in training (--train-crops): 10^7 is two months of a 2-core CPU
MAX_TRAIN_CROPS = 10_000_000
# datasets a training run may mix into its own (data.mix)
MAX_MIX = 16
# the detector's interval (--detect-every, detect_every_max): the frames a track's gap filling keeps grow
# with it; at 10 fps 100 frames are 10 s, longer than a person takes to cross a view
MAX_DETECT_EVERY = 100
