"""The hospital's Photoshop annotations: reading them into label maps, and writing look-alikes for tests."""
