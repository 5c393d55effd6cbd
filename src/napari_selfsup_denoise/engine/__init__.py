"""Qt-free engine: data, masking, networks, training and tiled prediction."""
