"""What people read: tables (`tables`), charts drawn as PNG and plotly (`charts`) and the
HTML comparison report (`html`). No TensorFlow."""
