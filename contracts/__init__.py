"""The public contracts shared by writers and readers, free of dependencies."""
