"""The one source of metric, param and tag names.

The trial logger, the pruner's monitor, the best-run query and the report all import
these, so renaming a metric is one edit and nothing silently reads a stale name.
"""

# Per-epoch curves, logged with step = epoch (1-based).
LOSS = "loss"
ACCURACY = "accuracy"
VAL_LOSS = "val_loss"
VAL_ACCURACY = "val_accuracy"
EPOCH_TIME = "epoch_time_s"  # wall time of one epoch, validation included
EPOCH_METRICS = (LOSS, ACCURACY, VAL_LOSS, VAL_ACCURACY, EPOCH_TIME)

# Logged once at the end of a trial.
PARAM_COUNT = "param_count"
FLOPS = "flops"  # forward FLOPs per image, 2 x multiply-adds
TRAIN_TIME = "train_time_s"  # wall time of model.fit, all epochs
IMAGES_PER_S = "images_per_s"  # training images/s, warm-up epoch excluded when epochs > 1
TEST_ACCURACY = "test_accuracy"
TEST_LOSS = "test_loss"
TRAIN_EVAL_ACCURACY = "train_eval_accuracy"  # clean (un-augmented) train subset
OVERFIT_GAP = "overfit_gap"  # train_eval_accuracy - final val_accuracy
BEST_EPOCH = "best_epoch"  # epoch (1-based) of the best val_accuracy
BEST_VAL_ACCURACY = "best_val_accuracy"
VAL_LOSS_RISE = "val_loss_rise"  # val_loss of the tested weights / min val_loss - 1
SELECTED_VAL_ACCURACY = "selected_val_accuracy"  # val_accuracy of the weights that were tested:
# the best epoch's under early stopping (restored), else the last epoch's
STOPPED_EPOCH = "stopped_epoch"  # epochs actually trained (below epochs: early stopping)
TEST_ACCURACY_TTA = "test_accuracy_tta"  # tta: mean scores over the views (flip, translate)
# What the fit cost and what it trained beside (benchmark/train/cost.py).
CPU_TIME = "cpu_time_s"  # CPU seconds of the trial's own process during fit, all threads
CPU_MS_PER_IMAGE = "cpu_ms_per_image"  # CPU ms a training image, first epoch excluded
HOST_BUSY_OTHER = "host_busy_other"  # mean share (0-1) of the cores others kept busy in fit
HOST_BUSY_SEARCH = "host_busy_search"  # the same, of the trial's own search (not in others)
PROBE_IMAGES_PER_S = "probe_images_per_s"  # `retime`: images/s of a quiet two-epoch probe
PROBE_HOST_BUSY_OTHER = "probe_host_busy_other"  # `retime`: host_busy_other during the probe
# Where a trial's wall time went (seconds), from the search process's point of view.
STARTUP_TIME = "startup_s"  # trial process start to the trial's first line
DATA_TIME = "data_s"  # reading the decoded arrays (cache) or decoding them
BUILD_TIME = "build_s"  # model build and compile
FIT_TIME = "fit_s"  # model.fit, all epochs (= train_time_s)
EVAL_TIME = "eval_s"  # test, clean-train and TTA evaluation
LOG_TIME = "log_s"  # final metrics, figures and artifacts to MLflow
TRIAL_WALL_TIME = "trial_wall_s"  # the search's wait for the trial, start to result
OVERHEAD_TIME = "overhead_s"  # trial_wall_s - fit_s: what a trial costs besides training
TIMING_METRICS = (STARTUP_TIME, DATA_TIME, BUILD_TIME, FIT_TIME, EVAL_TIME, LOG_TIME,
                  TRIAL_WALL_TIME, OVERHEAD_TIME)  # fmt: skip
LEARNING_RATE = "lr"  # per epoch: the optimizer's rate when the epoch ends

# What model selection optimises: validation, never test.
OBJECTIVE = VAL_ACCURACY  # reported each epoch to the pruner; its last value ranks trials

# Overfit verdict thresholds (README states them).
OVERFIT_GAP_THRESHOLD = 0.10
VAL_LOSS_RISE_THRESHOLD = 0.20

# Tags.
TAG_OVERFIT = "overfit"
TAG_DEVICE = "device"
TAG_GPU_NAME = "gpu_name"  # on a GPU: its name (also in `device`)
GPU_TIME = "gpu_time_s"  # on a GPU: the fit's wall time holding it
GPU_MEMORY_PEAK = "gpu_memory_peak_mb"  # on a GPU: TensorFlow's allocator peak in the fit
GPU_UTILIZATION = "gpu_utilization_pct"  # on a GPU: mean nvidia-smi utilization in the fit
TAG_TIMING = "timing"  # clean | contended: other processes' load during fit (cost.py)
TIMING_CLEAN, TIMING_CONTENDED = "clean", "contended"  # its values
TAG_TF = "tensorflow_version"
TAG_KERAS = "keras_version"
TAG_DIGEST = "dataset_digest"
TAG_STATUS_REASON = "failure_reason"
ORPHAN_REASON = "worker died (orphan run)"  # its reason: a run left RUNNING by a dead command
TAG_TRIAL_STATE = "trial_state"  # complete | pruned | failed
TAG_GIT = "git_commit"
TAG_ROLE = "cnn_benchmark_role"  # search | ablation (parent runs) | trial (their children)
TAG_DATASET = "dataset"  # on parent runs; trial runs carry it as a param
TAG_BEST_RUN = "best_run"  # parent -> its best child run id
TAG_BEST_CONFIG = "best_config"  # parent -> the best child's run name
# What a run is, for the report and for filters in the UI (`tags.\`benchmark.role\``):
# trial | search | ablation (parents) | report | predict (`mlflow run -e predict`) | wrapper
# (an `mlflow run` run that holds no search and no trial: it failed first, or its search lives
# in another experiment).
TAG_BENCHMARK_ROLE = "benchmark.role"
ROLE_TAGS = (TAG_BENCHMARK_ROLE, TAG_ROLE)  # set together; old runs carry TAG_ROLE only
TAG_NOTE = "mlflow.note.content"  # a run's or experiment's description in the MLflow UI
# Stores from before one parent per study: a resume made a new parent linking the earlier ones.
TAG_FIRST_PARENT = "first_parent"  # parent -> the first parent run of its study
TAG_PREVIOUS_PARENT = "previous_parent"  # parent -> the study's parent before this one
TAG_STUDY_PARENTS = "study_parents"  # parent -> how many parent runs its study has
TAG_RESUMES = "resumes"  # parent -> how often a later command reopened it (resume, worker)
SEARCH_WALL_TIME = "search_wall_s"  # parent: seconds its commands held it, summed over resumes
# halving parent: seconds of its budget spent, the study's own account, logged after each trial
# (a command killed with its machine never logs search_wall_s, the account survives it)
BUDGET_SPENT = "budget_spent_s"
TAG_RUNG = "benchmark.rung"  # halving: the trial run's rung (0, 1, ...)
TAG_STAGE = "benchmark.stage"  # halving: explore (a rung) | confirm (a finalist's other seeds)
TAG_WARM_START = "benchmark.warm_start"  # a candidate queued from this earlier run's config
TAG_SEARCH_RUN = "search_run"  # wrapper -> the parent run that holds its search
TAG_LAB_TASK = "lab_task"  # lab command: task1 | task2 | auto, on a stage's parent and trials
TAG_VARY = "benchmark.vary"  # ablation: the one setting it varies (parent and trials)
# A lab part: the winner's runs (comma-separated, one per seed) that stand for its own value,
# already trained by its search with the same settings and seeds, so the part does not retrain
TAG_BASELINE_RUNS = "benchmark.baseline_runs"
TAG_MODEL_URI = "benchmark.model_uri"  # trial -> its logged model, for mlflow.pyfunc.load_model
# Which trials keep their model (search option log_models): every one, the search's winner
# only, or none. Here, not in benchmark.train.export, so the CLI's --help needs no Keras.
LOG_MODELS = ("all", "best", "none")

# Params a trial logs besides its config: the split sizes it actually trained on, and the
# dtype policy its `precision` became on its machine (auto: float32, mixed_bfloat16, ...).
SPLIT_SIZE_PARAMS = ("train_size", "val_size", "test_size")
PRECISION_RESOLVED = "precision_resolved"


def is_overfit(overfit_gap: float, val_loss_rise: float) -> bool:
    """The README's rule: a large train/val gap or a validation loss that climbed back."""
    return overfit_gap > OVERFIT_GAP_THRESHOLD or val_loss_rise > VAL_LOSS_RISE_THRESHOLD
