"""The lab's Streamlit helpers: cached resources and session state (state), the background
training job (jobs), Plotly figure builders (figures) and small shared views (views).

Imports run pages -> ui -> mnistnet; nothing in mnistnet imports this package.
"""
