using System.Text.Json.Nodes;
using SharpTune.Models;
using SharpTune.Models.Blocks;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

public class RotaryEmbeddingTests
{
    private static PretrainedConfig Config(string json) => new((JsonObject)JsonNode.Parse(json)!);

    [Fact]
    public void Llama3ScalingFollowsTheFrequencyRule()
    {
        using var scope = NewDisposeScope();
        var rotary = RotaryEmbedding.FromConfig(Config("""
            {"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
            """), headDim: 64);
        Assert.Equal(new RopeScaling("llama3", 32, 1, 4, 8192), rotary.Scaling);
        const long position = 1000;
        var (cos, sin) = rotary.Angles(tensor(new[] { position }).reshape(1, 1), ScalarType.Float32);
        var cosines = cos.flatten().data<float>().ToArray();
        var sines = sin.flatten().data<float>().ToArray();
        // Llama 3.1's rule in double precision: wavelengths above 8192 are slowed 32×, below 2048 kept, ramp between.
        for (var i = 0; i < 32; i++)
        {
            var frequency = 1.0 / Math.Pow(500000.0, 2.0 * i / 64);
            var wavelength = 2 * Math.PI / frequency;
            var smooth = (8192 / wavelength - 1.0) / (4.0 - 1.0);
            var expected = wavelength < 2048 ? frequency
                : wavelength > 8192 ? frequency / 32
                : (1 - smooth) * frequency / 32 + smooth * frequency;
            Assert.Equal(Math.Cos(position * expected), cosines[i], 5e-4);
            Assert.Equal(Math.Sin(position * expected), sines[i + 32], 5e-4);
        }
    }

    [Fact]
    public void LinearScalingInterpolatesPositionsInEitherConfigLayout()
    {
        using var scope = NewDisposeScope();
        var plain = new RotaryEmbedding(16, 10000);
        var positions = arange(0, 64, 2, ScalarType.Int64).unsqueeze(0);
        var (expected, _) = plain.Angles(positions / 2, ScalarType.Float32);
        foreach (var json in new[]
                 {
                     """{"rope_theta": 10000.0, "rope_scaling": {"type": "linear", "factor": 2.0}}""",
                     """{"rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}}""",
                 })
        {
            var (cos, _) = RotaryEmbedding.FromConfig(Config(json), headDim: 16).Angles(positions, ScalarType.Float32);
            Assert.True(cos.allclose(expected, rtol: 0, atol: 1e-6), json);
        }
    }

    [Fact]
    public void UnsupportedRopeTypeIsRefusedWithItsName()
    {
        var error = Assert.Throws<NotSupportedException>(() =>
            RotaryEmbedding.FromConfig(Config("""{"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}"""), headDim: 64));
        Assert.Contains("yarn", error.Message);
    }
}
