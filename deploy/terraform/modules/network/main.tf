# One region's network: a VPC with a public subnet per zone (or the default
# VPC's), and one security group per node that lets in exactly the rules
# given (rendered from the topology) and nothing else.

# Every zone whatever its state, so a zone in trouble does not shift the
# others onto new subnets (and their machines with them).
data "aws_availability_zones" "all" {
  #checkov:skip=CKV_AWS_394:The first var.zones names in sorted order are used; a zone AWS adds sorts after them and is never picked up.
}

locals {
  zone_names = slice(sort(data.aws_availability_zones.all.names), 0, var.zones)
  vpc_id     = var.use_default_vpc ? data.aws_vpc.default[0].id : aws_vpc.this[0].id

  # One resource per (node, rule, source) so a change to one address
  # replaces one rule, not a node's whole group.
  rules = merge([
    for node, rules in var.ingress : merge([
      for rule in rules : {
        for cidr in rule.cidrs :
        "${node} ${rule.protocol}/${rule.from_port}-${rule.to_port} ${cidr}" => merge(rule, { node = node, cidr = cidr })
      }
    ]...)
  ]...)
}

data "aws_vpc" "default" {
  count   = var.use_default_vpc ? 1 : 0
  default = true
}

data "aws_subnet" "default" {
  count             = var.use_default_vpc ? var.zones : 0
  vpc_id            = data.aws_vpc.default[0].id
  availability_zone = local.zone_names[count.index]
  default_for_az    = true
}

resource "aws_vpc" "this" {
  #checkov:skip=CKV2_AWS_11:Flow logs of every media packet cost more than the edges; enable them in the account's baseline where wanted.
  count                = var.use_default_vpc ? 0 : 1
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = {
    Name = var.name
  }
}

# The VPC's default group, emptied: nothing may use it by accident.
resource "aws_default_security_group" "this" {
  count  = var.use_default_vpc ? 0 : 1
  vpc_id = aws_vpc.this[0].id

  tags = {
    Name = "${var.name}-default-unused"
  }
}

resource "aws_internet_gateway" "this" {
  count  = var.use_default_vpc ? 0 : 1
  vpc_id = aws_vpc.this[0].id

  tags = {
    Name = var.name
  }
}

resource "aws_subnet" "public" {
  count             = var.use_default_vpc ? 0 : var.zones
  vpc_id            = aws_vpc.this[0].id
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, count.index)
  availability_zone = local.zone_names[count.index]
  # Nodes are reached at Elastic IPs associated before they boot.
  map_public_ip_on_launch = false

  tags = {
    Name = "${var.name}-${local.zone_names[count.index]}"
  }
}

resource "aws_route_table" "public" {
  count  = var.use_default_vpc ? 0 : 1
  vpc_id = aws_vpc.this[0].id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this[0].id
  }

  tags = {
    Name = var.name
  }
}

resource "aws_route_table_association" "public" {
  count          = var.use_default_vpc ? 0 : var.zones
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_security_group" "node" {
  #checkov:skip=CKV2_AWS_5:Attached to the node's network interface by modules/node, which this check cannot follow.
  for_each    = var.ingress
  name        = "${var.name}-${each.key}"
  description = "geomesh ${each.key}: only what the topology declares"
  vpc_id      = local.vpc_id

  tags = {
    Name = "${var.name}-${each.key}"
  }
}

resource "aws_vpc_security_group_ingress_rule" "node" {
  for_each          = local.rules
  security_group_id = aws_security_group.node[each.value.node].id
  description       = each.value.description
  ip_protocol       = each.value.protocol
  from_port         = each.value.from_port
  to_port           = each.value.to_port
  cidr_ipv4         = each.value.cidr
}

# Out: media to participants on any port, octo and Raft to peers, and the
# package, release and SSM endpoints at boot.
resource "aws_vpc_security_group_egress_rule" "node" {
  for_each          = var.ingress
  security_group_id = aws_security_group.node[each.key].id
  description       = "media to participants, octo and Raft to peers, packages at boot"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}
