"""What people read: tables (`tables`), the HTML comparison report (`html`), the live
dashboard, the sweep page; composed from the figures of `animalcnn.figures`. No
TensorFlow."""
