"""Where weights come from: the store, fetching and converting, safe readers and formats, loading, importing."""
