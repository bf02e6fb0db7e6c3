"""Datasets: finding image folders (`files`, `discovery`), decoding and caching them
(`decoding`, `cache`), feeding them to TensorFlow (`pipeline`), checking them
(`checks`) and the synthetic demo set (`synthetic`). Only `pipeline` imports TensorFlow."""
