variable "cluster" {
  description = "cluster.name of the topology."
  type        = string
}

variable "subnets" {
  description = "The region's public subnets (id, availability zone), from the network module."
  type = list(object({
    id                = string
    availability_zone = string
  }))
}

variable "security_group_ids" {
  description = "Each node's security group, from the network module."
  type        = map(string)
}

variable "selectors" {
  description = "This region's selectors: Elastic IP, zone number, API URL, whether it initializes a new cluster."
  type = map(object({
    public_ip = string
    zone      = number
    api_url   = string
    init      = bool
  }))
}

variable "files" {
  description = "Per selector, the files it reads by path relative to the topology."
  type        = map(map(string))
  sensitive   = true
}

variable "topology" {
  description = "The topology file's text."
  type        = string
}

variable "certs_dir" {
  description = "tls.dir of the topology, relative to it."
  type        = string
}

variable "geoip" {
  description = "GeoIP databases to download: path on the node, URL, SHA-256."
  type = list(object({
    path   = string
    url    = string
    sha256 = string
  }))
  default = []
}

variable "release" {
  description = "The geomesh release every selector installs unless pinned in node_releases."
  type = object({
    url    = string
    sha256 = string
  })
}

variable "node_releases" {
  description = "Releases pinned per selector id (a rolling upgrade)."
  type = map(object({
    url    = string
    sha256 = string
  }))
  default = {}
}

variable "instance_type" {
  description = "EC2 instance type."
  type        = string
}

variable "image" {
  description = "AMI owner and name pattern."
  type = object({
    owner = string
    name  = string
  })
}

variable "data_gb" {
  description = "Size of each selector's Raft data volume (GiB)."
  type        = number
  default     = 20
}

variable "args" {
  description = "Extra `geomesh selector` flags."
  type        = list(string)
  default     = []
}
