"""The lab's Streamlit helpers, in three layers that import downwards only:

- resources: cached singletons (the store, the training cluster, MNIST)
- identity, session: who the visitor is, their current model
- features: jobs, runs, forms, views, trainview, mydigits, uploadview, sweepview, canvas, figures

plain (visitor-written text made safe for Markdown and Plotly) imports nothing of ours; any
layer may use it.

Imports run pages -> ui -> mnistnet; nothing in mnistnet imports this package.
"""
