"""The multi-view simulation of docs/paper.md §2 (Theorems 1-2): its data model, its networks and its experiment."""
