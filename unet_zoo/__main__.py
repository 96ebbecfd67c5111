from unet_zoo.cli import main

main()
