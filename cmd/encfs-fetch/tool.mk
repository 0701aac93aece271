encfs-fetch_PKGS := fuse3
