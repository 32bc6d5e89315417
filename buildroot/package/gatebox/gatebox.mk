################################################################################
#
# gatebox
#
################################################################################

# Built from the checkout this BR2_EXTERNAL tree lives in.
GATEBOX_VERSION = 0.1.0
GATEBOX_SITE = $(BR2_EXTERNAL_GATEBOX_PATH)/..
GATEBOX_SITE_METHOD = local
GATEBOX_SETUP_TYPE = setuptools
GATEBOX_LICENSE = Proprietary

$(eval $(python-package))
