################################################################################
#
# python-atpublic
#
################################################################################

PYTHON_ATPUBLIC_VERSION = 9.0.0
PYTHON_ATPUBLIC_SOURCE = atpublic-$(PYTHON_ATPUBLIC_VERSION).tar.gz
PYTHON_ATPUBLIC_SITE = https://files.pythonhosted.org/packages/source/a/atpublic
PYTHON_ATPUBLIC_SETUP_TYPE = hatch
PYTHON_ATPUBLIC_LICENSE = Apache-2.0
PYTHON_ATPUBLIC_LICENSE_FILES = LICENSE

$(eval $(python-package))
