output "subnets" {
  description = "Public subnets, one per zone: id and availability zone."
  # An Elastic IP can be associated only once the VPC reaches the internet.
  depends_on = [aws_route_table_association.public]
  value = [
    for i, name in local.zone_names : {
      id                = var.use_default_vpc ? data.aws_subnet.default[i].id : aws_subnet.public[i].id
      availability_zone = name
    }
  ]
}

output "security_group_ids" {
  description = "Each node's security group."
  value       = { for id, sg in aws_security_group.node : id => sg.id }
}
