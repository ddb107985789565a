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

variable "recorders" {
  description = "This region's recorders: Elastic IP, zone number, HTTP URL."
  type = map(object({
    public_ip = string
    zone      = number
    http_url  = string
  }))
}

variable "files" {
  description = "Per recorder, the files it reads by path relative to the topology."
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

variable "release" {
  description = "The geomesh release every recorder installs unless pinned in node_releases."
  type = object({
    url    = string
    sha256 = string
  })
}

variable "node_releases" {
  description = "Releases pinned per recorder id (a rolling upgrade)."
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
  description = "Size of each recorder's recordings volume (GiB)."
  type        = number
  default     = 200
}

variable "args" {
  description = "Extra `geomesh recorder` flags."
  type        = list(string)
  default     = []
}
