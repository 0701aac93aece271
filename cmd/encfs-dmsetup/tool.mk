encfs-dmsetup_PKGS := devmapper blkid libargon2
