"""Human pose embeddings from unlabelled video: the tested machinery behind the course notebooks."""
