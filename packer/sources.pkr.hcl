# The build VM: QEMU from the base disk, a NoCloud seed on a cidata CD, headless, serial console to a file.

locals {
  # Under TCG, -cpu host does not exist; "max" gives the guest every feature QEMU can emulate.
  cpu_model = var.accelerator == "tcg" ? "max" : "host"
  # Compress with parallel, out-of-order writes (every core of the build host). zlib is qemu-img's
  # default and needs no option, so any qemu-img can read the result.
  convert_args = concat(["-m", "8", "-W"], var.compress && var.compression == "zstd" ? ["-o", "compression_type=zstd"] : [])
}

source "qemu" "visa" {
  accelerator      = var.accelerator
  headless         = true
  disk_image       = true
  iso_url          = var.base_image
  iso_checksum     = var.base_image_checksum
  use_backing_file = false
  disk_size        = var.disk_size
  disk_interface   = "virtio"
  disk_discard     = "unmap"
  disk_compression = var.compress
  skip_compaction  = ! var.compress
  format           = "qcow2"
  qemu_img_args {
    convert = local.convert_args
  }
  net_device       = "virtio-net"
  cpus             = var.cpus
  memory           = var.memory_mib
  output_directory = var.output_directory
  vm_name          = "${var.image_name}.qcow2"
  cd_files         = ["${var.seed_dir}/user-data", "${var.seed_dir}/meta-data", "${var.seed_dir}/network-config"]
  cd_label         = "cidata"
  qemuargs = [
    ["-cpu", local.cpu_model],
    ["-serial", "file:${var.serial_log}"],
    ["-name", var.vm_name],
  ]

  communicator         = "ssh"
  ssh_username         = var.build_user
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = var.ssh_timeout
  # The build user and its key go in the same command that powers the VM off (C14).
  shutdown_command = "sudo /opt/visa/build/provision/99-seal.sh"
  shutdown_timeout = var.shutdown_timeout
}
