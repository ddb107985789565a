output "instance_id" {
  description = "The EC2 instance."
  value       = aws_instance.this.id
}

output "public_ip" {
  description = "The Elastic IP the node is reached at (the topology's address)."
  value       = data.aws_eip.this.public_ip
}

output "private_ip" {
  description = "Its address inside the VPC."
  value       = aws_network_interface.this.private_ip
}
