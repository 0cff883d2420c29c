# Inputs of a VISA image build. visa-build writes them to build/packer/<image>.pkrvars.hcl; every value
# can be set by hand too (see README, Running Packer by hand).

variable "image_name" {
  type        = string
  description = "Image spec name; the qcow2 is written as <output_directory>/<image_name>.qcow2."
  validation {
    condition     = length(var.image_name) > 0 && var.image_name == lower(replace(var.image_name, " ", "_"))
    error_message = "The image_name must be non-empty, lower case, without spaces."
  }
}

variable "vm_name" {
  type        = string
  description = "QEMU's -name of the build VM: visa-build-<run id>-<image name>, so only its own run reaps it."
  validation {
    condition     = substr(var.vm_name, 0, 11) == "visa-build-" && length(split("-", var.vm_name)) >= 4
    error_message = "The vm_name must be visa-build-<run id>-<image name>."
  }
}

variable "base_image" {
  type        = string
  description = "Path or URL of the base qcow2 (visa-build's own, or a distribution cloud image with cloud-init)."
}

variable "base_image_checksum" {
  type        = string
  description = "Checksum of base_image, e.g. sha256:<hex> or file:<url of SHA256SUMS>."
  validation {
    condition     = contains(["sha256", "sha512", "file"], split(":", var.base_image_checksum)[0])
    error_message = "The base_image_checksum must start with sha256:, sha512: or file: (never none)."
  }
}

variable "accelerator" {
  type        = string
  description = "QEMU accelerator: kvm where it works, tcg (software emulation) elsewhere."
  validation {
    condition     = contains(["kvm", "tcg"], var.accelerator)
    error_message = "The accelerator must be kvm or tcg (visa-build resolves auto before calling Packer)."
  }
}

variable "cpus" {
  type        = number
  description = "Virtual CPUs of the build VM."
  default     = 2
}

variable "memory_mib" {
  type        = number
  description = "Memory of the build VM in MiB."
  default     = 4096
}

variable "disk_size" {
  type        = string
  description = "Size of the image's disk (the root filesystem grows to it at first boot)."
  default     = "12G"
}

variable "output_directory" {
  type        = string
  description = "Directory Packer creates for the qcow2; it must not exist yet."
}

variable "seed_dir" {
  type        = string
  description = "Folder with the build's NoCloud user-data and meta-data (build user and its key)."
}

variable "build_user" {
  type        = string
  description = "User the build logs in as; created by the build seed, removed before the image is sealed."
  default     = "visa-build"
}

variable "ssh_private_key_file" {
  type        = string
  description = "Private half of the key made for this build only."
  sensitive   = true
}

variable "ssh_timeout" {
  type        = string
  description = "How long to wait for the first ssh login (scaled with the accelerator)."
  default     = "10m"
}

variable "shutdown_timeout" {
  type        = string
  description = "How long the sealed VM may take to power off."
  default     = "5m"
}

variable "serial_log" {
  type        = string
  description = "File receiving the VM's serial console (kept when a build fails)."
}

variable "context_dir" {
  type        = string
  description = "Build context: provision/ scripts and the rendered spec/ (the same as the Docker build's)."
}

variable "provision_env" {
  type        = map(string)
  description = "VISA_* variables of the provisioning scripts (the Dockerfile's ARGs)."
}

variable "provision_secrets" {
  type        = map(string)
  description = "VISA_* variables that may carry credentials (an index URL with user:token@): masked in logs."
  sensitive   = true
  default     = {}
}

variable "provision_scripts" {
  type        = list(string)
  description = "Provisioning scripts to run, in order, from provision/."
}

variable "compress" {
  type        = bool
  description = "Compact and compress the qcow2 (the published image); false for a cached intermediate stage."
  default     = true
}

variable "compression" {
  type        = string
  description = "Compression of the published qcow2: zlib (any QEMU reads it) or zstd (QEMU >= 5.1 where it is used)."
  default     = "zlib"
  validation {
    condition     = contains(["zlib", "zstd"], var.compression)
    error_message = "The compression must be zlib or zstd."
  }
}
