variable "name" {
  description = "Prefix of every resource name (cluster and region)."
  type        = string
}

variable "use_default_vpc" {
  description = "Use the region's default VPC and its default subnets instead of a VPC of our own."
  type        = bool
  default     = false
}

variable "vpc_cidr" {
  description = "Address range of the VPC this module creates (ignored with use_default_vpc)."
  type        = string
  default     = "10.80.0.0/16"
}

variable "zones" {
  description = "Availability zones to spread over (one public subnet each)."
  type        = number
  default     = 2

  validation {
    condition     = var.zones >= 1 && var.zones <= 6
    error_message = "zones must be between 1 and 6."
  }
}

variable "ingress" {
  description = "Per node id, the only traffic allowed in; each node gets a security group of its own."
  type = map(list(object({
    description = string
    protocol    = string
    from_port   = number
    to_port     = number
    cidrs       = list(string)
  })))
}
