"""alphaforge data layer: Binance/Tardis sources, schemas, parquet store, validation."""
