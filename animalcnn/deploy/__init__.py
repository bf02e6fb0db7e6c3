"""Getting a trained model out: exported artifacts checked against `model.keras`."""
