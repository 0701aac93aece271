encfs-mkimage_PKGS := libargon2
