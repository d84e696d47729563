"""Vision Lab's engine: data, training, jobs and runs. Never imports gradio (a test says so)."""
