# Copied into every root `geomesh deploy render` writes. The first group is
# rendered from the topology into geomesh.auto.tfvars; the rest are yours
# (terraform.tfvars beside it, which render never touches).

variable "cluster" {
  description = "cluster.name of the topology: names every resource."
  type        = string
}

variable "domain" {
  description = "cluster.domain of the topology: the meeting hostname GeoDNS answers (empty: none)."
  type        = string
}

variable "topology_file" {
  description = "The topology's file name, beside the files it names."
  type        = string
}

variable "certs_dir" {
  description = "tls.dir of the topology, relative to it."
  type        = string
}

variable "geoip_paths" {
  description = "GeoIP databases the selectors open (paths on the node)."
  type        = list(string)
}

variable "edges" {
  description = "The topology's edges as the modules need them."
  type = map(object({
    region    = string
    public_ip = string
    zone      = number
    url       = string
    http_port = number
    tls_port  = number
    tls_sites = list(string)
    files     = list(string)
  }))
}

variable "selectors" {
  description = "The topology's selectors as the modules need them."
  type = map(object({
    region    = string
    public_ip = string
    zone      = number
    api_url   = string
    init      = bool
    ns_name   = string
    files     = list(string)
  }))
}

variable "ingress" {
  description = "Per node, exactly what may reach it."
  type = map(object({
    region = string
    rules = list(object({
      description = string
      protocol    = string
      from_port   = number
      to_port     = number
      cidrs       = list(string)
    }))
  }))
}

variable "release" {
  description = "The geomesh release tarball every node installs (scripts/release.sh): https:// or s3:// URL and its SHA-256."
  type = object({
    url    = string
    sha256 = string
  })

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.release.sha256)) && can(regex("^(https|s3)://[^' ]+$", var.release.url))
    error_message = "release.url must be an https:// or s3:// URL without quotes or spaces, release.sha256 64 lowercase hex digits."
  }
}

variable "node_releases" {
  description = "Releases pinned per node id, over var.release: a rolling upgrade moves one node at a time."
  type = map(object({
    url    = string
    sha256 = string
  }))
  default = {}

  validation {
    condition     = alltrue([for r in values(var.node_releases) : can(regex("^[0-9a-f]{64}$", r.sha256)) && can(regex("^(https|s3)://[^' ]+$", r.url))])
    error_message = "Every node_releases entry needs an https:// or s3:// url and a 64-hex-digit sha256."
  }
}

variable "geoip_databases" {
  description = "Where the selectors download each GeoIP database the topology lists (path on the node => url and SHA-256)."
  type = map(object({
    url    = string
    sha256 = string
  }))
  default = {}

  validation {
    condition     = alltrue([for p in var.geoip_paths : contains(keys(var.geoip_databases), p)])
    error_message = "geoip_databases needs a url and sha256 for every path in geoip_paths (the topology's geoip.databases)."
  }
}

variable "edge_instance_type" {
  description = "EC2 instance type of the edges (CPU and network bound)."
  type        = string
  default     = "c7i.xlarge"
}

variable "selector_instance_type" {
  description = "EC2 instance type of the selectors."
  type        = string
  default     = "m7i.large"
}

variable "image" {
  description = "The machine image: the newest AMI of this owner whose name matches (Debian 12, glibc 2.36; a release built there needs 2.34)."
  type = object({
    owner = string
    name  = string
  })
  default = {
    owner = "136693071363"
    name  = "debian-12-amd64-*"
  }
}

variable "use_default_vpc" {
  description = "Place the nodes in each region's default VPC instead of a VPC of their own."
  type        = bool
  default     = false
}

variable "vpc_cidr" {
  description = "Address range of each region's VPC (private side; nodes are reached at their Elastic IPs)."
  type        = string
  default     = "10.80.0.0/16"
}

variable "zones" {
  description = "Availability zones per region that nodes spread over."
  type        = number
  default     = 2
}

variable "selector_data_gb" {
  description = "Size of each selector's Raft data volume (GiB); it outlives the instance."
  type        = number
  default     = 20
}

variable "edge_args" {
  description = "Extra `geomesh edge` flags for every edge (e.g. [\"--drain-timeout\", \"30s\"])."
  type        = list(string)
  default     = []
}

variable "selector_args" {
  description = "Extra `geomesh selector` flags for every selector (e.g. [\"--trusted-proxy\", \"10.0.0.0/8\"])."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags on every resource, beside geomesh:cluster."
  type        = map(string)
  default     = {}
}
