"""Frontalization: the landmark autoencoder (posed landmarks + head pose -> canonical landmarks)."""
