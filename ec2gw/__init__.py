"""ec2gw: an EC2-Query compatible gateway for OpenNebula."""

__version__ = "0.1.0"
