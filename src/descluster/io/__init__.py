"""Input/output: safe loading of descriptors, images from folders or zips, atomic writes."""
