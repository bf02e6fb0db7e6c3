"""Datasets: finding image folders (`files`, `discovery`), decoding and caching them
(`decoding`, `cache`), a run's checked training images (`loading`), batches for
TensorFlow (`pipeline`, tf.data) and for JAX and PyTorch (`batches`), checking them
(`checks`) and the synthetic demo set (`synthetic`). Only `pipeline` imports TensorFlow."""
