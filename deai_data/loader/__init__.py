"""The streaming loader's torch-free parts: the epoch plan (order, partitioning, resume) and shard
prefetching. `deai_data.torch` wraps them as a PyTorch IterableDataset."""
