"""The Streamlit dashboard: ``data`` (loading, no streamlit), ``views`` (plotly figures), ``app`` (the page)."""
