"""The lab's Streamlit helpers, in three layers that import downwards only:

- resources: cached singletons (the store, the training cluster, MNIST)
- identity, session: who the visitor is, their current model
- features: jobs, runs, forms, views, trainview, mydigits, canvas, figures

Imports run pages -> ui -> mnistnet; nothing in mnistnet imports this package.
"""
