using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models.Blocks;

/// <summary>A layer stack (encoder or decoder) whose layers can be recomputed during backward instead of keeping their
/// activations: transformers' <c>gradient_checkpointing</c> flag, switched by <see cref="PreTrainedModel.GradientCheckpointingEnable"/>.</summary>
public interface IGradientCheckpointable
{
    bool GradientCheckpointing { get; set; }
}

/// <summary>
/// Reentrant activation checkpointing (torch.utils.checkpoint with <c>use_reentrant=True</c>), built on TorchSharp's
/// custom autograd functions. The forward pass runs a layer without recording a graph and keeps only its input
/// tensors and the random-number state; backward restores that state (so dropout draws the same masks), re-runs the
/// layer with gradients on detached inputs, back-propagates the incoming gradient through it — parameter gradients
/// accumulate into <c>.grad</c> as usual, frozen or quantized weights get none — and returns the inputs' gradients.
/// Memory drops from every layer's activations to one layer's plus the layer inputs, for one extra forward per layer.
/// </summary>
public static class GradientCheckpointing
{
    /// <summary>Whether a stack checkpoints this pass: enabled, in training mode, and with gradients being recorded.</summary>
    public static bool IsActive(nn.Module stack) =>
        stack is IGradientCheckpointable { GradientCheckpointing: true } && stack.training && is_grad_enabled();

    /// <summary>Runs <paramref name="layer"/> on <paramref name="inputs"/>, checkpointed when <paramref name="stack"/>
    /// says so (<see cref="IsActive"/>), directly otherwise.</summary>
    public static Tensor Run(nn.Module stack, Func<IReadOnlyList<Tensor?>, Tensor> layer, params Tensor?[] inputs) =>
        IsActive(stack) ? Checkpoint(layer, inputs) : layer(inputs);

    /// <summary>Runs a stack's <paramref name="layers"/> in order, each through <see cref="Run"/> on the hidden states
    /// followed by the <paramref name="shared"/> tensors every layer reads, adding each output to <paramref name="states"/>
    /// when given. Tensors stay in the caller's dispose scope.</summary>
    public static Tensor RunLayers<TLayer>(nn.Module stack, IEnumerable<TLayer> layers, Func<TLayer, IReadOnlyList<Tensor?>, Tensor> forward,
        Tensor hidden, List<Tensor>? states, params Tensor?[] shared)
    {
        foreach (var layer in layers)
        {
            hidden = Run(stack, x => forward(layer, x), [hidden, .. shared]);
            states?.Add(hidden);
        }
        return hidden;
    }

    /// <summary>
    /// <paramref name="function"/>(<paramref name="inputs"/>) with its activations recomputed in backward.
    /// The function must read tensors only from its argument (and module parameters): anything else it captured would
    /// be gone by the time backward runs it again. Null inputs stay null.
    /// </summary>
    public static Tensor Checkpoint(Func<IReadOnlyList<Tensor?>, Tensor> function, params Tensor?[] inputs)
    {
        // Autograd only calls a function's backward when one of its inputs needs a gradient. A layer whose input does not
        // (frozen embeddings under LoRA) still has trainable weights inside, so an empty anchor input that requires grad
        // keeps the node in the graph, as transformers' enable_input_require_grads does for PEFT.
        var anchor = inputs.Any(t => t is { requires_grad: true }) ? null : empty(0, requires_grad: true);
        return CheckpointFunction.apply([function, anchor, .. inputs]);
    }

    private sealed class CheckpointFunction : autograd.SingleTensorFunction<CheckpointFunction>
    {
        private const int FirstInput = 2;

        public override string Name => nameof(CheckpointFunction);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var function = (Func<IReadOnlyList<Tensor?>, Tensor>)vars[0];
            var inputs = vars.Skip(FirstInput).Select(v => v as Tensor).ToArray();
            ctx.save_data("function", function);
            if (inputs.Any(t => t is not null && t.device.type == DeviceType.CUDA))
            {
                // TorchSharp cannot read the CUDA generator's state, so the layer's CUDA randomness starts from a seed
                // drawn (reproducibly) from the CPU generator, and backward reseeds with it.
                var seed = randint(long.MaxValue, [1], dtype: ScalarType.Int64).item<long>();
                cuda.manual_seed(seed);
                ctx.save_data("cuda_seed", seed);
            }
            using var generator = Generator.Default;
            // Saved tensors live as long as the graph node; the caller's dispose scope keeps these handles until then.
            ctx.save_for_backward([.. inputs, generator.get_state()]);
            using var scope = NewDisposeScope();
            return function(inputs).MoveToOuterDisposeScope();
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var function = (Func<IReadOnlyList<Tensor?>, Tensor>)ctx.get_data("function");
            // Null entries: no gradient (the function and anchor arguments, inputs that need none).
            List<Tensor> gradients;
            using (var scope = NewDisposeScope())
            {
                var saved = ctx.get_saved_variables();
                var inputs = saved.Take(saved.Count - 1)
                    .Select(t => t is null ? null : t.detach().requires_grad_(t.requires_grad))
                    .ToArray();
                using var generator = Generator.Default;
                var current = generator.get_state();
                Tensor output;
                try
                {
                    generator.set_state(saved[^1]);
                    if (ctx.get_data("cuda_seed") is long seed)
                        cuda.manual_seed(seed);
                    using (enable_grad())
                        output = function(inputs);
                }
                finally
                {
                    generator.set_state(current);
                }
                if (output.requires_grad)
                    autograd.backward([output], [gradOutput]);
                // The engine reads the returned gradients after this method returns: they must outlive this scope.
                gradients = inputs.Select(t => (t is { requires_grad: true } ? t.grad?.MoveToOuterDisposeScope() : null)!).ToList();
            }
            return [null!, null!, .. gradients];
        }
    }
}
