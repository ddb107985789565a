# Copied into every root `geomesh deploy render` writes.

terraform {
  # Variable validations that read other variables need 1.9.
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}
