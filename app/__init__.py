"""bonemarrow.app: `bm-app`, a Streamlit page over the runtime (upload a scan, see its segmentation)."""
