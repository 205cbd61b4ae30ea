"""The paper's evaluation: prompt methods, offline text metrics, image scores table, grids, human A/B picks."""
