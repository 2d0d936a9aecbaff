"""SavedModel export with preprocessing and generation inside the graph."""

from mmzoo.export.image_captioning import export_image_captioning_model

__all__ = ["export_image_captioning_model"]
