"""The bundled data: 8×8 digits (digits.npz) and example pictures, shipped inside the package."""
