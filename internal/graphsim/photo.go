package graphsim

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
)

const generatedPhotoSize = 96

func generatedPhoto(seed int64, i int) *photoData {
	s := newRNG(seed, streamPhoto, uint64(i)^0xfeed).next()
	return &photoData{
		etag:        fmt.Sprintf("%08X", uint32(s)),
		contentType: "image/jpeg",
		seed:        s,
		width:       generatedPhotoSize,
		height:      generatedPhotoSize,
	}
}

func etagOf(data []byte) string {
	sum := sha256.Sum256(data)
	return fmt.Sprintf("%X", sum[:4])
}

// bytes returns the photo's content; generated photos are drawn on demand (a
// two-colour avatar, a valid JPEG) so they cost no memory while unused.
func (p *photoData) bytes() []byte {
	if p.data != nil {
		return p.data
	}
	bg := color.RGBA{uint8(p.seed), uint8(p.seed >> 8), uint8(p.seed >> 16), 255}
	fg := color.RGBA{255 - bg.R, 255 - bg.G, 255 - bg.B, 255}
	img := image.NewRGBA(image.Rect(0, 0, p.width, p.height))
	c := p.width / 2
	for y := 0; y < p.height; y++ {
		for x := 0; x < p.width; x++ {
			dx, dy := x-c, y-c*4/5
			if dx*dx+dy*dy < c*c/5 || (y > c*6/5 && dx*dx < (c*c*2/3)) {
				img.SetRGBA(x, y, fg)
			} else {
				img.SetRGBA(x, y, bg)
			}
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		return nil // cannot happen with an in-memory RGBA image
	}
	return buf.Bytes()
}
