# One geomesh machine: its Elastic IP on a network interface of its own
# (associated before the instance boots, so the address it advertises is
# the one it has from the first packet), its files (topology, settings,
# credentials) as SecureString parameters only its role can read, and
# cloud-init that installs the release, whose bootstrap.sh
# (deploy/machine) fetches them and starts the unit.

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_ami" "image" {
  most_recent = true
  owners      = [var.image.owner]

  filter {
    name   = "name"
    values = [var.image.name]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

# Fails the plan when the topology's address is not an Elastic IP of this
# account in this region: the "wrong public IP" cannot reach a machine.
data "aws_eip" "this" {
  public_ip = var.public_ip
}

locals {
  name      = "${var.cluster}-${var.node_id}"
  ssm_path  = "/geomesh/${var.cluster}/${var.node_id}"
  ssm_arn   = "arn:${data.aws_partition.current.partition}:ssm:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:parameter${local.ssm_path}"
  s3_object = startswith(var.release.url, "s3://") ? trimprefix(var.release.url, "s3://") : ""

  # What the machine fetches at boot, by path under /etc/geomesh: changed,
  # it reaches a running machine when that one is refreshed, never by
  # replacing it. The topology is gzipped to fit a parameter.
  parameters = merge(var.files, var.config_files, {
    "topology.yaml.gz.b64" = base64gzip(var.topology)
    "${var.role}.env"      = join("", [for k, v in var.env : "${k}=${v}\n"])
  })

  # What replaces the machine when it changes: the release, and what the
  # release's bootstrap.sh needs before it can fetch the rest.
  bootstrap = merge(var.bootstrap, {
    ROLE           = var.role
    NODE_ID        = var.node_id
    PUBLIC_IP      = var.public_ip
    RELEASE_URL    = var.release.url
    RELEASE_SHA256 = var.release.sha256
    SSM_PATH       = local.ssm_path
    AWS_REGION     = data.aws_region.current.region
  })

  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    role     = var.role
    node_id  = var.node_id
    packages = jsonencode(concat(["awscli", "ca-certificates", "curl", "python3"], var.packages))
    files = [
      {
        path    = jsonencode("/etc/geomesh/bootstrap.env")
        mode    = "0600"
        content = base64encode(join("", [for k, v in local.bootstrap : "${k}='${v}'\n"]))
      },
      {
        path    = jsonencode("/usr/local/lib/geomesh/bootstrap")
        mode    = "0755"
        content = base64encode(file("${path.module}/install.sh"))
      },
    ]
  })
}

resource "aws_network_interface" "this" {
  subnet_id       = var.subnet_id
  security_groups = [var.security_group_id]
  description     = "geomesh ${var.role} ${var.node_id}"

  tags = {
    Name = local.name
  }
}

resource "aws_eip_association" "this" {
  allocation_id        = data.aws_eip.this.id
  network_interface_id = aws_network_interface.this.id
}

resource "aws_ssm_parameter" "file" {
  #checkov:skip=CKV_AWS_337:The account's aws/ssm key encrypts them; who may decrypt is decided by the node role's policy, which names only this node's path.
  for_each = nonsensitive(toset(keys(local.parameters)))
  name     = "${local.ssm_path}/${each.key}"
  type     = "SecureString"
  tier     = "Intelligent-Tiering"
  value    = local.parameters[each.key]
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# Only this node's parameters (not AmazonSSMManagedInstanceCore, which
# reads every parameter in the account), the release object when it is in
# S3, and what Session Manager needs to open a shell.
data "aws_iam_policy_document" "node" {
  statement {
    sid       = "OwnCredentials"
    actions   = ["ssm:GetParametersByPath", "ssm:GetParameter", "ssm:GetParameters"]
    resources = [local.ssm_arn, "${local.ssm_arn}/*"]
  }

  # Session Manager (a shell) and Run Command, with no port open for them.
  statement {
    sid = "SessionManager"
    actions = [
      "ssm:UpdateInstanceInformation",
      "ssmmessages:CreateControlChannel",
      "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel",
      "ssmmessages:OpenDataChannel",
      "ec2messages:AcknowledgeMessage",
      "ec2messages:DeleteMessage",
      "ec2messages:FailMessage",
      "ec2messages:GetEndpoint",
      "ec2messages:GetMessages",
      "ec2messages:SendReply",
    ]
    #checkov:skip=CKV_AWS_111:These agent actions take no resource ARN.
    #checkov:skip=CKV_AWS_356:These agent actions take no resource ARN.
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = local.s3_object == "" ? [] : [local.s3_object]

    content {
      sid       = "Release"
      actions   = ["s3:GetObject"]
      resources = ["arn:${data.aws_partition.current.partition}:s3:::${statement.value}"]
    }
  }
}

# Prefixes: IAM names are global and at most 64 characters, node ids 63.
resource "aws_iam_role" "this" {
  name_prefix        = "geomesh-"
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = {
    Name = local.name
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "geomesh-node"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_instance_profile" "this" {
  name_prefix = "geomesh-"
  role        = aws_iam_role.this.name

  tags = {
    Name = local.name
  }
}

resource "aws_instance" "this" {
  ami                  = data.aws_ami.image.id
  instance_type        = var.instance_type
  iam_instance_profile = aws_iam_instance_profile.this.name
  ebs_optimized        = true
  monitoring           = true
  # Gzipped: the topology alone can pass EC2's 16 KiB.
  user_data_base64            = base64gzip(local.user_data)
  user_data_replace_on_change = true

  primary_network_interface {
    network_interface_id = aws_network_interface.this.id
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    encrypted   = true
    volume_type = "gp3"
    volume_size = var.root_volume_gb
  }

  tags = {
    Name           = local.name
    "geomesh:role" = var.role
    "geomesh:node" = var.node_id
  }

  lifecycle {
    # A newer image is taken when the node is replaced (a rolling upgrade),
    # never by replacing every node the day one is published.
    ignore_changes = [ami]
  }

  # Boot finds its address and credentials in place.
  depends_on = [aws_eip_association.this, aws_ssm_parameter.file]
}
