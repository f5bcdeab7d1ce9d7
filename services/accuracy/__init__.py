"""Top-1 / top-5 accuracy of exported models on the user's own labelled images."""
