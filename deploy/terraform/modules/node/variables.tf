variable "cluster" {
  description = "cluster.name of the topology."
  type        = string
}

variable "node_id" {
  description = "The node's id in the topology."
  type        = string
}

variable "role" {
  description = "edge, selector or recorder: which geomesh unit the machine runs."
  type        = string

  validation {
    condition     = contains(["edge", "selector", "recorder"], var.role)
    error_message = "role must be edge, selector or recorder."
  }
}

variable "public_ip" {
  description = "The node's address in the topology: an Elastic IP already allocated in this account and region."
  type        = string
}

variable "subnet_id" {
  description = "The public subnet the node's network interface is in."
  type        = string
}

variable "security_group_id" {
  description = "The node's own security group."
  type        = string
}

variable "instance_type" {
  description = "EC2 instance type."
  type        = string
}

variable "image" {
  description = "The newest AMI of this owner whose name matches; replacing a node picks up a newer one."
  type = object({
    owner = string
    name  = string
  })
}

variable "release" {
  description = "The geomesh release tarball: https:// or s3:// URL and its SHA-256."
  type = object({
    url    = string
    sha256 = string
  })
}

variable "topology" {
  description = "The topology file's text (/etc/geomesh/topology.yaml on the node; gzipped it must fit a parameter's 8 KiB)."
  type        = string
}

variable "files" {
  description = "Credentials and key files the node reads, by path relative to the topology (= under /etc/geomesh on the node)."
  type        = map(string)
  sensitive   = true
}

variable "env" {
  description = "The unit's settings (/etc/geomesh/<role>.env, read by deploy/systemd/geomesh-<role>.service)."
  type        = map(string)
}

variable "bootstrap" {
  description = "Role-specific settings of the boot script (TLS terminator, data volume)."
  type        = map(string)
  default     = {}
}

variable "config_files" {
  description = "More settings files, by path under /etc/geomesh."
  type        = map(string)
  default     = {}
}

variable "packages" {
  description = "Debian packages the boot script needs beyond the base set."
  type        = list(string)
  default     = []
}

variable "root_volume_gb" {
  description = "Size of the root volume (GiB)."
  type        = number
  default     = 16
}
