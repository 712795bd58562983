using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Models.Blocks;
using SharpTune.Peft;
using SharpTune.Quantization;
using SharpTune.Tests.Support;
using SharpTune.Tests.Training;
using SharpTune.Training;
using SharpTune.Training.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Models;

/// <summary>Gradient checkpointing changes memory, never results: loss and every gradient equal those of the plain
/// backward pass (fp32, dropout active), for every architecture, with LoRA and with a 4-bit base.</summary>
[Collection(TrainerCollection.Name)]
public class GradientCheckpointingTests
{
    private const double Tolerance = 1e-6;

    private static readonly string[] DropoutKeys =
        ["hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout", "attn_pdrop", "embd_pdrop", "resid_pdrop", "hidden_dropout"];

    /// <summary>The fixture with every dropout probability set to 0.1, so the recomputation must replay the same masks.</summary>
    private static PreTrainedModel LoadWithDropout(string directory)
    {
        var config = PretrainedConfig.FromDirectory(directory);
        foreach (var key in DropoutKeys)
            config.Set(key, 0.1);
        var model = AutoModel.FromConfig(config);
        using var checkpoint = Checkpoint.Open(directory);
        model.LoadWeights(checkpoint);
        return model;
    }

    private static bool IsEncoder(string fixture) => !fixture.EndsWith("-lm", StringComparison.Ordinal);

    private static ModelInputs Inputs(string fixture)
    {
        // Padding in the second row, so the attention mask travels through the checkpoint too.
        var ids = tensor(new long[,] { { 2, 15, 99, 7, 31, 3 }, { 2, 8, 41, 3, 0, 0 } });
        var mask = tensor(new long[,] { { 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 0, 0 } });
        return new ModelInputs(ids) { AttentionMask = mask, Labels = IsEncoder(fixture) && !fixture.EndsWith("mlm", StringComparison.Ordinal) ? tensor(new long[] { 1, 0 }) : ids };
    }

    /// <summary>One seeded training-mode forward and backward: the loss and each trainable parameter's gradient.</summary>
    private static (float Loss, Dictionary<string, Tensor> Gradients) Step(PreTrainedModel model, ModelInputs inputs, long seed)
    {
        model.zero_grad();
        manual_seed(seed);
        float loss;
        using (var output = model.Forward(inputs))
        {
            output.Loss!.backward();
            loss = output.Loss.item<float>();
        }
        var gradients = model.named_parameters().Where(p => p.parameter.grad is not null)
            .ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        return (loss, gradients);
    }

    private static void AssertSameGradients(Dictionary<string, Tensor> expected, Dictionary<string, Tensor> actual, string what)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, gradient) in expected)
        {
            var error = (actual[name] - gradient).abs().max().item<float>();
            Assert.True(error <= Tolerance, $"{what}: gradient of {name} differs by {error}");
        }
    }

    [Theory]
    [InlineData("bert-seqcls")]
    [InlineData("bert-mlm")]
    [InlineData("roberta-seqcls")]
    [InlineData("distilbert-seqcls")]
    [InlineData("deberta-v2-seqcls")]
    [InlineData("llama-lm")]
    [InlineData("qwen2-lm")]
    [InlineData("phi-lm")]
    [InlineData("gpt2-lm")]
    [InlineData("gptneox-lm")]
    public void CheckpointedBackwardEqualsThePlainOne(string fixture)
    {
        using var scope = NewDisposeScope();
        using var model = LoadWithDropout(RepoPaths.Fixture("models", fixture));
        model.train();
        var inputs = Inputs(fixture);
        var (loss, gradients) = Step(model, inputs, seed: 7);
        Assert.NotEqual(loss, Step(model, inputs, seed: 8).Loss); // dropout is really active
        Assert.Equal(model.named_parameters().Count(), gradients.Count);

        model.GradientCheckpointingEnable();
        Assert.True(model.IsGradientCheckpointing);
        var (checkpointedLoss, checkpointedGradients) = Step(model, inputs, seed: 7);
        Assert.Equal(loss, checkpointedLoss);
        AssertSameGradients(gradients, checkpointedGradients, fixture);

        // Repeated checkpointed steps leave no tensors behind.
        void TrainStep()
        {
            using var stepScope = NewDisposeScope();
            using var output = model.Forward(inputs);
            output.Loss!.backward();
        }
        TrainStep();
        var live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (var i = 0; i < 3; i++)
            TrainStep();
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Theory]
    [InlineData("bert-seqcls")]
    [InlineData("llama-lm")]
    public void CheckpointedLayersKeepNoGraphFromForward(string fixture)
    {
        using var scope = NewDisposeScope();
        using var model = AutoModel.FromPretrained(RepoPaths.Fixture("models", fixture));
        model.train();
        var weight = model.named_parameters().First(p => p.name.Contains("layers.0.") || p.name.Contains("layer.0.")).parameter;
        void ForwardBumpBackward()
        {
            using var output = model.Forward(Inputs(fixture));
            // An in-place update of a layer weight between forward and backward: fatal when forward saved the weight for
            // backward, harmless when backward recomputes the layer from its input.
            using (no_grad())
                weight.add_(0.0);
            output.Loss!.backward();
        }
        Assert.ThrowsAny<Exception>(ForwardBumpBackward);
        model.GradientCheckpointingEnable();
        ForwardBumpBackward();
        Assert.NotNull(weight.grad);
    }

    [Fact]
    public void CheckpointRecomputesInBackwardWithTheSameRandomness()
    {
        using var scope = NewDisposeScope();
        var calls = 0;
        var x = randn(4, 8).requires_grad_();
        var w = randn(8, 8).requires_grad_();
        Tensor Layer(IReadOnlyList<Tensor?> inputs)
        {
            calls++;
            return nn.functional.dropout(inputs[0]!.matmul(w), 0.5, training: true).tanh();
        }
        manual_seed(3);
        Layer([x]).sum().backward();
        var (gx, gw) = (x.grad!.clone(), w.grad!.clone());
        var after = randn(1).item<float>();
        (x.grad, w.grad) = (null, null);

        manual_seed(3);
        var output = GradientCheckpointing.Checkpoint(Layer, x);
        Assert.Equal(2, calls);
        output.sum().backward();
        Assert.Equal(3, calls);
        Assert.True(x.grad!.equal(gx).all().item<bool>() && w.grad!.equal(gw).all().item<bool>());
        // The generator continues from where the forward left it, not from the recomputation.
        Assert.Equal(after, randn(1).item<float>());
    }

    [Fact]
    public void NothingIsCheckpointedInEvalModeWithoutGradOrWithACache()
    {
        using var scope = NewDisposeScope();
        using var model = AutoModel.FromPretrained(RepoPaths.Fixture("models", "llama-lm"));
        model.GradientCheckpointingEnable();
        var stack = ModuleTree.UniqueModules(model).Select(m => m.Module).OfType<DecoderModel>().Single();
        model.train();
        Assert.True(GradientCheckpointing.IsActive(stack));
        using (no_grad())
            Assert.False(GradientCheckpointing.IsActive(stack));
        model.eval();
        Assert.False(GradientCheckpointing.IsActive(stack));
        model.GradientCheckpointingDisable();
        Assert.False(model.IsGradientCheckpointing);
        Assert.Throws<NotSupportedException>(() => new TinyLinearModel().GradientCheckpointingEnable());

        // Training-mode decoding with a cache still works (and is not recomputed).
        model.GradientCheckpointingEnable();
        model.train();
        var cached = DecoderTestSupport.GreedyWithCache((ICausalLM)model, [1, 5, 9], 8);
        model.GradientCheckpointingDisable();
        Assert.Equal(DecoderTestSupport.GreedyWithCache((ICausalLM)model, [1, 5, 9], 8), cached);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LoraAdaptersGetTheSameGradientsAndTheBaseNone(bool fourBitBase)
    {
        using var scope = NewDisposeScope();
        using var model = DecoderTestSupport.LoadCausalLM(RepoPaths.Fixture("lora", "llama", "base"));
        if (fourBitBase)
            Quantizer.Quantize(model, new QuantizationOptions { Bits = 4, DoubleQuant = true });
        manual_seed(0);
        var peft = PeftModel.Create(model, new LoraConfig { R = 8, LoraAlpha = 16, LoraDropout = 0.1, TargetModules = ["q_proj", "v_proj", "down_proj"] });
        // B starts at zero; give it values so that gradients reach A too.
        using (no_grad())
            foreach (var (_, layer) in peft.LoraLayers)
                layer.LoraB("default").weight!.normal_(0, 0.02);
        var baseWeights = model.named_parameters().Where(p => !p.parameter.requires_grad).Select(p => p.parameter)
            .Concat(model.named_buffers().Select(b => b.buffer)).Select(t => t.clone()).ToList();
        model.train();
        var inputs = Inputs("llama-lm");
        var (loss, gradients) = Step(model, inputs, seed: 11);
        Assert.Equal(12, gradients.Count); // A and B of 3 targets in 2 layers
        Assert.All(gradients.Keys, name => Assert.Contains(".lora_", name));

        model.GradientCheckpointingEnable();
        var (checkpointedLoss, checkpointedGradients) = Step(model, inputs, seed: 11);
        Assert.Equal(loss, checkpointedLoss);
        AssertSameGradients(gradients, checkpointedGradients, fourBitBase ? "qlora" : "lora");
        Assert.All(model.named_parameters().Where(p => !p.parameter.requires_grad), p => Assert.Null(p.parameter.grad));
        var after = model.named_parameters().Where(p => !p.parameter.requires_grad).Select(p => p.parameter)
            .Concat(model.named_buffers().Select(b => b.buffer)).ToList();
        Assert.All(baseWeights.Zip(after), pair => Assert.True(pair.First.equal(pair.Second).all().item<bool>()));
    }

    private static TrainingArguments TrainerArgs(string dir) => new()
    {
        OutputDir = dir,
        NumTrainEpochs = 2,
        PerDeviceTrainBatchSize = 4,
        LearningRate = 1e-3,
        LoggingSteps = 1,
        Seed = 5,
        WriteLogs = false,
    };

    [Fact]
    public void TrainerWithGradientCheckpointingEndsWithTheSameWeights()
    {
        var examples = Enumerable.Range(0, 8)
            .Select(i => new TrainingExample([2, 10 + i, 40 + 3 * i, 7 + i % 3, 3]) { Label = i % 2 }).ToList();
        var dir = RepoPaths.NewTempDirectory();
        try
        {
            Dictionary<string, float[]> Train(bool checkpointing)
            {
                using var model = LoadWithDropout(RepoPaths.Fixture("models", "bert-seqcls"));
                new Trainer(model, TrainerArgs(dir) with { GradientCheckpointing = checkpointing }, examples).Train();
                Assert.Equal(checkpointing, model.IsGradientCheckpointing);
                return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().data<float>().ToArray());
            }
            var plain = Train(false);
            var checkpointed = Train(true);
            foreach (var (name, values) in plain)
                Assert.True(values.Zip(checkpointed[name]).All(p => Math.Abs(p.First - p.Second) <= Tolerance), $"{name} differs");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Fp16TrainingWithCheckpointingLowersTheLossOfADecoder()
    {
        var examples = Enumerable.Range(0, 4).Select(i => new long[] { 1, 20 + i, 300, 41, 5 + i, 77, 2 })
            .Select(ids => new TrainingExample(ids) { TokenLabels = ids }).ToList();
        var dir = RepoPaths.NewTempDirectory();
        try
        {
            using var model = LoadWithDropout(RepoPaths.Fixture("models", "llama-lm"));
            var args = TrainerArgs(dir) with { NumTrainEpochs = 8, LearningRate = 5e-3, Precision = TrainingPrecision.Float16, GradientCheckpointing = true };
            var result = new Trainer(model, args, examples).Train();
            var losses = result.State.LogHistory.Where(e => e.ContainsKey("loss")).Select(e => e["loss"]).ToList();
            Assert.Equal(8, losses.Count);
            Assert.True(losses[^1] < 0.7 * losses[0], $"fp16 loss {losses[0]} -> {losses[^1]}");
            Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private sealed class TinyLinearModel() : PreTrainedModel("TinyLinear", new PretrainedConfig(new System.Text.Json.Nodes.JsonObject()))
    {
        public override ModelOutput Forward(ModelInputs inputs) => throw new NotSupportedException();
    }
}
