"""Training: a custom `tf.distribute` loop for any Keras model.

    Trainer               fit / evaluate / checkpoints / EMA / atomic saving
    get_strategy          a tf.distribute.Strategy by name
    input_context         this worker's tf.distribute.InputContext (its share of the data)
    optimizer_by_part     an optimizer per model part (lower rates for pretrained towers)
    warmup_cosine_decay   linear warm-up + cosine decay (a Keras CosineDecay)
    save_model            atomic `.keras` saving
    read_metrics          the rows of a run's `metrics.jsonl`
"""

from mmzoo.training.checkpoints import latest_checkpoint
from mmzoo.training.checkpoints import save_model
from mmzoo.training.optimizers import optimizer_by_part
from mmzoo.training.schedules import warmup_cosine_decay
from mmzoo.training.strategies import STRATEGIES
from mmzoo.training.strategies import get_strategy
from mmzoo.training.strategies import input_context
from mmzoo.training.strategies import is_chief
from mmzoo.training.trainer import Trainer
from mmzoo.training.training_log import read_metrics

__all__ = [
    "STRATEGIES",
    "Trainer",
    "get_strategy",
    "input_context",
    "is_chief",
    "latest_checkpoint",
    "optimizer_by_part",
    "read_metrics",
    "save_model",
    "warmup_cosine_decay",
]
