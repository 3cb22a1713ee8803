"""Framework apps that exercise behaviour the examples/ apps keep out of the way of readers."""
