"""SavedModel export with preprocessing and generation inside the graph."""

from mmzoo.export.image_captioning import export_image_captioning_model

__all__ = ["export_image_captioning_model"]

from mmzoo.export.dual_encoder import export_dual_encoder  # noqa: E402

__all__ += ["export_dual_encoder"]

from mmzoo.export.video_qa import export_video_qa_model  # noqa: E402

__all__ += ["export_video_qa_model"]
