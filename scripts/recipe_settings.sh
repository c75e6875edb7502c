# Shared by the recipe comparison scripts, sourced with two arguments, MINUTES of training-loop
# time and the DECAY minutes of the lr schedule; moves to the repository root. Sets the prepared
# shared faces, the paper's masks plus free-form strokes, the sanity bar's reconstruction-only
# generator (image task only, L1, no discriminator, the default's width and hole-mask input), and
# the run settings every recipe of an equal-time comparison gets (one thread each: the recipes
# share the machine side by side).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MINUTES=$1
DECAY=$2
DATA=work/prepared/celeba_aligned:work/prepared/celeba_crops
MASKS=("data.masks.kinds=[block,pattern,noise,freeform]" "data.masks.weights=[1,1,1,1]")
RECON_ONLY=(m_i --data $DATA model.ngf=32 model.ndf=32 model.mask_channel=true loss.adv_i=0 "${MASKS[@]}")
COMMON=(train.max_minutes=$MINUTES train.lr_decay_minutes=$DECAY train.epochs=60 train.precision=bf16
        train.channels_last=true train.checkpoint_every=250 train.sample_every=1000 train.log_every=50 --no-progress)
export OMP_NUM_THREADS=1
