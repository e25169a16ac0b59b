"""Fine-tuning the detector on a survey's own reviewed boxes (optional extra ``train``).

Needs PyTorch (``pip install irbis[train]``); nothing else in irbis imports
this package, so the default install stays torch-free.
"""
