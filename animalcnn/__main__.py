from animalcnn.cli import main

main()
